import sys

from labeling.cli import main

sys.exit(main())
