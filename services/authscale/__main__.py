import sys

from authscale.cli import main

sys.exit(main())
