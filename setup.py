"""Which files the wheel holds and where; everything else is in pyproject.toml.

The repository keeps `static/`, `migrations/` and `hypercorn.toml` at its top (the team
guide's layout), but an installed server has no checkout to read them from, so the wheel
puts them inside the package: `static/` becomes `app/static/`, `hypercorn.toml` becomes
`app/hypercorn.toml`, and `migrations/` becomes the package `app.migrations` (never a
top-level `migrations`, which would collide with anyone else's). The app finds them with
importlib.resources (app/resources.py). An editable install (`make install`) maps the
name `app.migrations` onto the repository's `migrations/`, so the server and
`make makemigrations` use that folder; see docs/decisions.md (packaging)."""

from pathlib import Path

from setuptools import find_packages, setup
from setuptools.command.build_py import build_py


class BuildPy(build_py):
    """Also copies hypercorn.toml into the built package (package data can only come from
    a package's own folder, and this one file is not worth a folder of its own)."""

    def run(self) -> None:
        super().run()
        if not self.editable_mode:  # an editable install reads the repository's copy
            self.copy_file("hypercorn.toml", str(Path(self.build_lib, "app", "hypercorn.toml")))


setup(
    packages=[*find_packages(include=["app", "app.*"]), "app.migrations", "app.static", "app.static.vendor"],
    package_dir={"app.migrations": "migrations", "app.static": "static"},
    # Every file of the dashboard and of the vendored Swagger UI (static/vendor/swagger-ui).
    package_data={"app.static": ["*"], "app.static.vendor": ["swagger-ui/*"]},
    cmdclass={"build_py": BuildPy},
)
