"""report.html: the report, its gate, charts and an item browser in one file that opens offline."""

from benchgate.report.html.collect import collect
from benchgate.report.html.render import FILENAME, render_html, write_report_html

__all__ = ["FILENAME", "collect", "render_html", "write_report_html"]
