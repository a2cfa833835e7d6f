"""nbgrader configuration of the course; tools/grade.py runs nbgrader from this directory."""

import pathlib
import sys

_here = pathlib.Path(__file__).resolve().parent
sys.path.insert(0, str(_here / "tools" / "nbgrader"))

from vmlib_nbgrader import configure

c = get_config()  # noqa: F821 - provided by traitlets when it loads this file
c.CourseDirectory.root = str(_here / "build" / "nbgrader")
c.CourseDirectory.course_id = "vmlib-mixedmap"
configure(c)
