"""Experiments over seeds: ``sweep`` (runs), ``compare`` (statistics, table, figure), ``report`` (one HTML
page) and ``video`` (MP4/GIF of a trained policy). ``commands`` registers them with ``robopg``'s CLI.

Nothing here is imported by ``robopg --help`` beyond ``commands``, which needs only argparse.
"""
