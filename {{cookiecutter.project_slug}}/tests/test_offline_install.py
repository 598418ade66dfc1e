"""What the deploy build's offline-start check accepts: the pieces of pip's behaviour it models.

``tests/test_container.py`` checks its verdict against the image's own install step; these cases
pin down the rules that test cannot vary cheaply (wheel platforms, markers, pip's options).
"""

from __future__ import annotations

import pytest

from pipelines import offline_install

IMAGE = offline_install.Image(python="3.12", pinned={"numpy": "2.5.1", "scikit-learn": "1.9.0"})
OFFLINE = "--no-index\n--find-links wheels\n"
SETUPTOOLS = "wheels/setuptools-80.9.0-py3-none-any.whl"


def test_pins_the_image_ships_need_no_wheel_but_the_build_of_code_needs_setuptools() -> None:
    requirements = OFFLINE + "numpy==2.5.1\nscikit-learn==1.9.0\n"
    assert offline_install.blockers(requirements, [SETUPTOOLS], IMAGE) == []
    assert offline_install.blockers(requirements, [], IMAGE) == [
        "setuptools>=40.8.0 (pip builds code/ in an isolated environment)"
    ]


@pytest.mark.parametrize(
    ("wheel", "installs"),
    [
        ("pandas-3.1.1-cp312-cp312-manylinux_2_24_x86_64.manylinux_2_28_x86_64.whl", True),
        ("pandas-3.1.1-cp311-cp311-manylinux_2_28_x86_64.whl", False),  # another Python
        ("pandas-3.1.1-cp312-cp312-macosx_11_0_arm64.whl", False),  # another platform
        ("pandas-3.1.1-cp312-cp312-manylinux_2_28_aarch64.whl", False),  # another machine
        ("pandas-3.1.0-cp312-cp312-manylinux_2_28_x86_64.whl", False),  # another version
    ],
)
def test_a_vendored_wheel_counts_only_for_the_images_python_and_platform(
    wheel: str, installs: bool
) -> None:
    requirements = OFFLINE + "pandas==3.1.1\n"
    problems = offline_install.blockers(requirements, [SETUPTOOLS, f"wheels/{wheel}"], IMAGE)
    assert problems == ([] if installs else ["pandas==3.1.1 (not pinned in the image)"])


def test_without_no_index_pip_would_still_ask_the_index() -> None:
    files = [SETUPTOOLS, "wheels/pandera-0.35.0-py3-none-any.whl"]
    assert offline_install.blockers(OFFLINE + "pandera==0.35.0\n", files, IMAGE) == []
    problems = offline_install.blockers("--find-links wheels\npandera==0.35.0\n", files, IMAGE)
    assert problems[-1] == "requirements.txt lacks --no-index and --find-links"


def test_markers_are_evaluated_for_the_images_python_and_a_different_version_is_named() -> None:
    requirements = (
        "numpy==2.4.6 ; python_full_version < '3.12'\n"
        "numpy==2.5.5 ; python_full_version >= '3.12'\n"
        "tzdata==2026.6 ; sys_platform == 'win32'\n"
    )
    problems = offline_install.blockers(requirements, [], IMAGE)
    assert "numpy==2.5.5 (image has 2.5.1)" in problems
    assert not any("2.4.6" in problem or "tzdata" in problem for problem in problems)


def test_the_image_record_keeps_only_exact_pins() -> None:
    image = offline_install.load_image()
    assert image.python == "3.12"
    assert image.pinned["scikit-learn"] and "joblib" not in image.pinned  # joblib>=1.4.0


def test_the_refusal_is_one_line_naming_the_standard_and_the_way_out() -> None:
    problems = [f"p{index}==1 (not pinned in the image)" for index in range(10)]
    message = offline_install.refusal("model package X", problems)
    assert "\n" not in message
    assert message.startswith("network_isolation (organisation standards) is on")
    assert "p7==1" in message and "p8==1" not in message and "and 2 more" in message
    assert message.endswith("or deploy without network_isolation")
