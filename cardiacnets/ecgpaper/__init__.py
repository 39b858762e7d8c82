"""ECG paper: the standard 12-lead printout laid out once (:mod:`.layout`), drawn as SVG (:mod:`.svg`) or with
matplotlib for PNG/PDF (:mod:`.mpl`)."""

from cardiacnets.ecgpaper.layout import EcgPage, layout_page
from cardiacnets.ecgpaper.svg import page_svg

__all__ = ["EcgPage", "layout_page", "page_svg"]
