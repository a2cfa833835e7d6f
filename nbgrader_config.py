"""nbgrader configuration of the course; tools/grade.py runs nbgrader from this directory.

The exchange (release_assignment, fetch_assignment, submit, collect) is the folder
$NBGRADER_EXCHANGE, by default nbgrader's /srv/nbgrader/exchange; see docs/instructors.md.
"""

import os
import pathlib
import sys

_here = pathlib.Path(__file__).resolve().parent
sys.path.insert(0, str(_here / "tools" / "nbgrader"))

from vmlib_nbgrader import configure

c = get_config()  # noqa: F821 - provided by traitlets when it loads this file
c.CourseDirectory.root = str(_here / "build" / "nbgrader")
c.CourseDirectory.course_id = "vmlib-mixedmap"
c.Exchange.root = os.environ.get("NBGRADER_EXCHANGE", "/srv/nbgrader/exchange")
configure(c)
