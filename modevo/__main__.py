import sys

from modevo.cli import main

sys.exit(main())
