"""Contract suites: subclass one in your plugin's tests and provide the fixture it names.

>>> from distsched.testing.contracts import StorageContract
>>> class TestMyStorage(StorageContract):
...     @pytest.fixture
...     def storage_url(self):
...         return "mystore://localhost/test"

The built-in plugins are tested with exactly these suites (tests/contracts/).
"""

from .balancer import BalancerContract
from .election import ElectionContract
from .executor import ExecutorContract
from .processes import ProcessContract
from .storage import StorageContract

__all__ = ["BalancerContract", "ElectionContract", "ExecutorContract", "ProcessContract", "StorageContract"]
