"""`python -m core <command>`: the command line (`core.cli`)."""
import sys

from core.runtime.process import keep_freed_memory

keep_freed_memory()  # before torch and the rest are imported: threads that allocate meanwhile would get arenas of their own
from core.cli.main import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
