"""Kept for code written against earlier versions: the registries live in the public module
:mod:`distsched.registry`."""

from __future__ import annotations

from ..registry import (
    APP,
    BalancerRegistry,
    Conflict,
    ElectionRegistry,
    ExecutorRegistry,
    FunctionRegistry,
    Origin,
    Registration,
    Registry,
    Replacement,
    SchemeRegistry,
    StorageRegistry,
)

__all__ = [
    "APP", "BalancerRegistry", "Conflict", "ElectionRegistry", "ExecutorRegistry", "FunctionRegistry", "Origin",
    "Registration", "Registry", "Replacement", "SchemeRegistry", "StorageRegistry",
]
