"""The dbt project, in its own module so importing it is cheap (see STACK_NOTES)."""

import subprocess
import sys
from pathlib import Path

from dagster_dbt import DbtProject

DBT_PROJECT_DIR = Path(__file__).resolve().parents[3] / "dbt_project"

dbt_project = DbtProject(project_dir=DBT_PROJECT_DIR)
dbt_project.prepare_if_dev()


def ensure_manifest() -> Path:
    """Parse the dbt project when its manifest is missing or older than a project file.

    ``@dbt_assets`` needs ``target/manifest.json`` at import; ``prepare_if_dev`` only parses
    under ``dagster dev``, so the CLI, tests and CI call this first.
    """
    manifest = dbt_project.manifest_path
    sources = [
        p
        for sub in ("models", "macros", "seeds", "tests")
        for p in (DBT_PROJECT_DIR / sub).rglob("*")
        if p.is_file()
    ] + [DBT_PROJECT_DIR / "dbt_project.yml"]
    newest = max(p.stat().st_mtime for p in sources)
    if manifest.exists() and manifest.stat().st_mtime >= newest:
        return manifest
    dbt = Path(sys.executable).parent / "dbt"
    subprocess.run(
        [
            str(dbt),
            "parse",
            "--quiet",
            "--project-dir",
            str(DBT_PROJECT_DIR),
            "--profiles-dir",
            str(DBT_PROJECT_DIR),
        ],
        check=True,
        cwd=DBT_PROJECT_DIR,
    )
    return manifest


ensure_manifest()
