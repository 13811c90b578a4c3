import sys

from eevee.cli import main

sys.exit(main())
