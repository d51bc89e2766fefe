"""Sphinx extension of the course website: the repository's address from pyproject.toml.

``[project.urls] Repository`` is the address's one home. The theme builds each chapter's
Binder and Colab launch menu, and its repository button, from it; the ``launch-links``
directive lists every chapter with the same two links (the front page uses it).
"""
import pathlib
from urllib.parse import urlparse

from docutils import nodes
from sphinx.util.docutils import SphinxDirective

try:
    import tomllib
except ModuleNotFoundError:      # Python 3.10
    import tomli as tomllib

PYPROJECT = pathlib.Path(__file__).resolve().parents[2] / "pyproject.toml"


def repository_url():
    with open(PYPROJECT, "rb") as f:
        url = tomllib.load(f)["project"].get("urls", {}).get("Repository")
    if not url:
        raise ValueError(f"{PYPROJECT}: [project.urls] has no Repository entry")
    return url.rstrip("/")


def launch_urls(theme_options, notebook_path):
    """``{"Binder": url, "Colab": url}`` for a notebook (its path in the repository),
    in the form sphinx-book-theme gives its launch menu for a GitHub repository."""
    repository = urlparse(theme_options["repository_url"])
    if repository.netloc != "github.com":
        raise ValueError(f"launch links need a github.com repository, not {repository.geturl()}")
    org_repo, branch = repository.path.strip("/"), theme_options.get("repository_branch", "main")
    launch = theme_options["launch_buttons"]
    return {
        "Binder": f"{launch['binderhub_url'].rstrip('/')}/v2/gh/{org_repo}/{branch}"
                  f"?urlpath=lab/tree/{notebook_path}",
        "Colab": f"{launch['colab_url'].rstrip('/')}/github/{org_repo}/blob/{branch}/{notebook_path}",
    }


class LaunchLinks(SphinxDirective):
    """A list of the book's notebook chapters, each with its Binder and Colab links."""

    def run(self):
        items = nodes.bullet_list()
        for docname in sorted(self.env.found_docs):
            if not self.env.doc2path(docname).endswith(".ipynb"):
                continue
            paragraph = nodes.paragraph()
            paragraph += nodes.literal(text=pathlib.PurePosixPath(docname).name)
            for i, (host, url) in enumerate(launch_urls(self.config.html_theme_options,
                                                        f"{docname}.ipynb").items()):
                paragraph += nodes.Text(": " if i == 0 else " · ")
                paragraph += nodes.reference(text=host, refuri=url)
            items += nodes.list_item("", paragraph)
        return [items]


def _configure(app, config):
    config.html_theme_options["repository_url"] = repository_url()
    config.html_theme_options["use_repository_button"] = True
    # With no default colour mode the theme logs a console error on a reader's first visit.
    config.html_context.setdefault("default_mode", "auto")


def setup(app):
    app.connect("config-inited", _configure)
    app.add_directive("launch-links", LaunchLinks)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
