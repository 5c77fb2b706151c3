"""Sources: files jobcast tails as if they were jobs' output (`jobcast serve --watch GLOB`).

`paths` checks patterns and files against the operator's `watch_roots` (pure, imported by the
settings); `timing` reads `script --timing` files; `control` types into a source's tmux or
screen session; `tailer` follows the files into the store. Nothing is imported here, so the
settings can use `paths` without loading the tailer.
"""
