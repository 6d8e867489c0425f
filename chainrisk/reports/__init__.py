"""Contagion reports: one self-contained HTML file and a forum-ready Markdown post per period."""
