"""Plugin discovery (entry points), named registries and isolated event fan-out."""
