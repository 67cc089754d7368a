"""The tool library: versioned, verified, searchable tools. Knows nothing of LangGraph.

```python
from tools_library import ToolLibrary
lib = ToolLibrary.open()
```
"""

from tools_library.library import (
    DuplicateToolError,
    InvalidToolError,
    NotVerifiedError,
    ToolLibrary,
)
from tools_library.models import (
    Provenance,
    ReuseDecision,
    SearchHit,
    ToolDraft,
    ToolManifest,
    ToolNameError,
    UsageStats,
    validate_tool_name,
)
from tools_library.packs import InstallResult, PackError, PackReport
from tools_library.store import (
    CorruptToolError,
    LibraryBusyError,
    ToolLibraryError,
    ToolNotFoundError,
    ToolRetiredError,
)

__all__ = [
    "CorruptToolError",
    "DuplicateToolError",
    "InstallResult",
    "InvalidToolError",
    "LibraryBusyError",
    "NotVerifiedError",
    "PackError",
    "PackReport",
    "Provenance",
    "ReuseDecision",
    "SearchHit",
    "ToolDraft",
    "ToolLibrary",
    "ToolLibraryError",
    "ToolManifest",
    "ToolNameError",
    "ToolNotFoundError",
    "ToolRetiredError",
    "UsageStats",
    "validate_tool_name",
]
