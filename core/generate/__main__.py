import sys

from core.generate.cli import main

sys.exit(main())
