"""A student's self-check: `python -m vmlib.grading.selfcheck NOTEBOOK.ipynb`.

Runs the visible checks of the saved notebook exactly as the autograder judges them and prints the
points. Works from the notebook's folder, or from the repository root with the bare file name of
an exercise (found in exercises/<assignment>/).
"""

import sys

from vmlib.grading.notebook import main

if __name__ == "__main__":
    sys.exit(main())
