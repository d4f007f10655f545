"""ament_pep257 with our docstring convention: Google style, as STYLE.md writes them.

The "ament" preset wants numpy-style sections and the summary on the second line; our code
follows the Google style (``Args:``/``Returns:``/``Raises:``), which pydocstyle checks as
``--convention google``. Missing docstrings (D100-D107) are not required of tests and
private helpers.
"""
import pytest


@pytest.mark.linter
def test_pep257():
    main = pytest.importorskip('ament_pep257.main').main
    rc = main(argv=['--convention', 'google', '--add-ignore', 'D100', 'D101', 'D102', 'D103',
                    'D104', 'D105', 'D106', 'D107', '.', 'test'])
    assert rc == 0, 'Found pep257 errors'
