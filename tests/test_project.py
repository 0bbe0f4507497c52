"""The project object: what pages, commands and benches start from."""
import pytest

from labeling.project import Project
from labeling.workflow import settings
from tests.conftest import SHELL


def test_a_project_opens_migrated_with_its_store_settings_and_words(tmp_path, monkeypatch):
    monkeypatch.delenv("FNP_IMAGE_STORE", raising=False)
    monkeypatch.delenv("FNP_DATABASE_URL", raising=False)
    with Project.open(tmp_path / "data") as project:
        assert project.backend == "sqlite" and (tmp_path / "data" / "fnp.sqlite3").is_file()
        assert "reads" in project.db.table_names()
        assert project.store == tmp_path / "data"  # photos beside the database unless told otherwise
        assert project.vocabulary.CLASSES == ("N", "L1", "L2", "L3", "R1", "R2", "R3")
        before = project.settings()
        assert before["reads_per_image"] == 2 and set(before) == set(settings.SETTINGS)
        with pytest.raises(TypeError):
            before["reads_per_image"] = 3  # a snapshot is read-only
        settings.change(project.db, "lease_seconds", 900, SHELL)
        assert project.settings()["lease_seconds"] == 900 and before["lease_seconds"] == 600


def test_a_shared_image_store_is_the_projects_store(tmp_path, monkeypatch):
    monkeypatch.delenv("FNP_DATABASE_URL", raising=False)
    monkeypatch.setenv("FNP_IMAGE_STORE", str(tmp_path / "mount"))
    with Project.open(tmp_path / "data") as project:
        assert project.store == (tmp_path / "mount").resolve() and project.folder == tmp_path / "data"
