"""Kept for code written against earlier versions: the registries live in the public module
:mod:`distsched.registry`."""

from __future__ import annotations

from ..registry import APP as APP
from ..registry import BalancerRegistry as BalancerRegistry
from ..registry import Conflict as Conflict
from ..registry import ElectionRegistry as ElectionRegistry
from ..registry import ExecutorRegistry as ExecutorRegistry
from ..registry import FunctionRegistry as FunctionRegistry
from ..registry import Origin as Origin
from ..registry import Registration as Registration
from ..registry import Registry as Registry
from ..registry import Replacement as Replacement
from ..registry import SchemeRegistry as SchemeRegistry
from ..registry import StorageRegistry as StorageRegistry
