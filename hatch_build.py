"""Refuse to build a wheel without the widget's JS bundle (it is built by npm, not kept in git)."""

from pathlib import Path

from hatchling.builders.hooks.plugin.interface import BuildHookInterface


class CustomBuildHook(BuildHookInterface):
    def initialize(self, version, build_data):
        bundle = Path(self.root) / "nbdebug" / "static" / "landscape.js"
        if not bundle.exists():
            raise RuntimeError(f"{bundle} is missing: run `npm ci && npm run build` before building nbdebug")
