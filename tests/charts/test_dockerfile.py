"""The image recipe (no Docker engine here to build it): what it must and must not do."""

from __future__ import annotations


def instructions(root):
    lines = [line.strip() for line in (root / "Dockerfile").read_text().splitlines()]
    return [line for line in lines if line and not line.startswith("#")]


def test_the_image_is_slim_multi_stage_and_runs_as_a_non_root_user(root):
    steps = instructions(root)
    bases = [line.split()[1] for line in steps if line.startswith("FROM ")]
    assert len(bases) == 2 and all(base.startswith("python:3.11-slim") for base in bases)
    final = steps[max(i for i, line in enumerate(steps) if line.startswith("FROM ")):]
    user = next(line for line in final if line.startswith("USER "))
    assert user.split()[1].split(":")[0] not in ("0", "root")
    assert not any(line.startswith("RUN ") for line in final)  # nothing installed or built in the final image
    assert 'ENTRYPOINT ["eevee-operator"]' in final and 'CMD ["run"]' in final
    assert any("RULES_DIR=/opt/eevee/share/eevee-operator/rules" in line for line in final)


def test_the_rules_path_of_the_image_is_where_the_package_installs_them(root):
    data_files = (root / "setup.cfg").read_text()
    assert "share/eevee-operator/rules = rules/botmodule.yaml, rules/ipcconfig.yaml" in data_files
