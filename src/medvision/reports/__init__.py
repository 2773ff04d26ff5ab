"""Leaderboard tables and the self-contained HTML report."""

from medvision.reports.html import write_html_report
from medvision.reports.tables import (
    leaderboard,
    print_leaderboard,
    to_csv,
    to_markdown,
)

__all__ = ["leaderboard", "print_leaderboard", "to_csv", "to_markdown", "write_html_report"]
