"""openfields: train bottom-up pose estimation models with composite fields (CIF, CAF, CIFdet).

Importing it changes nothing in the process: the commands tune it (threads, OpenMP wait policy, malloc) in
:mod:`openfields.cli_setup`.
"""

from .version import BASE_VERSION as __version__
