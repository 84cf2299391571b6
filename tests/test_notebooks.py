"""Every notebook in notebooks/ runs top to bottom (nbclient), starting its own tiny runs."""

from __future__ import annotations

from pathlib import Path

import pytest

from conftest import ROOT

NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))


def test_there_are_the_four_notebooks() -> None:
    names = {p.stem for p in NOTEBOOKS}
    assert names == {"compare_runs", "generative_sampling", "transfer_learning", "rl_agent"}


@pytest.mark.slow
@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_runs_top_to_bottom(path: Path, tmp_path: Path) -> None:
    import nbformat
    from nbclient import NotebookClient

    book = nbformat.read(path, as_version=4)
    for cell in book.cells:  # committed without outputs: what a user opens is clean
        assert cell.cell_type != "code" or not cell.outputs, f"{path.name} has saved outputs"
    NotebookClient(
        book, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}
    ).execute()
    assert (tmp_path / "notebook-logs").is_dir()  # its runs stayed in its own folder
