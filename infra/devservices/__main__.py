import sys

from infra.devservices.cli import main

sys.exit(main())
