"""Declarative bilingual menus: model, loader with file:line errors, validator, hot-reloading library."""

from ivr.menus.library import MenuLibrary
from ivr.menus.loader import CheckResult, check_menu, load_menu, menu_files
from ivr.menus.model import Menu, Node
from ivr.menus.problems import MenuError, MenuProblem
from ivr.menus.validator import ValidatorOptions, asterisk_queue_names, validate_menu

__all__ = [
    "CheckResult",
    "Menu",
    "MenuError",
    "MenuLibrary",
    "MenuProblem",
    "Node",
    "ValidatorOptions",
    "asterisk_queue_names",
    "check_menu",
    "load_menu",
    "menu_files",
    "validate_menu",
]
