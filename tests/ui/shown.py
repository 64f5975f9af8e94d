"""What a reader sees of a message: pages escape Markdown in names and text they did not write."""

import re


def unescaped(markdown: str) -> str:
    return re.sub(r"\\(.)", r"\1", markdown)
