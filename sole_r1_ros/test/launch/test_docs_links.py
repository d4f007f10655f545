"""The documentation's relative links lead somewhere: a file that exists, a heading that does.

The README sends readers to other pages (``docs/compact_model.md``, the model files' training
log) and to its own sections; a page moved or a heading renamed would leave a dead link.
"""
import functools
import glob
import os
import re

import pytest

_REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__)))))
_PAGES = sorted(os.path.relpath(path, _REPO) for pattern in (
    'README.md', 'docs/*.md', 'bench/results/*.md', 'sole_r1_ros/sole_r1_ros/**/*.md')
    for path in glob.glob(os.path.join(_REPO, pattern), recursive=True))
_LINK = re.compile(r'\]\(([^)\s]+)\)')


def _slug(heading: str) -> str:
    """The anchor GitHub gives a heading: lower case, punctuation dropped, spaces to hyphens."""
    text = re.sub(r'[`*]', '', heading.strip().lower())
    text = re.sub(r'[^\w\- ]', '', text)
    return text.replace(' ', '-')


def _prose(path: str) -> str:
    """The page without its code blocks: a '#' or '](' in code is no heading or link."""
    text = open(path, encoding='utf-8').read()
    return re.sub(r'^```.*?^```', '', text, flags=re.M | re.S)


@functools.lru_cache(maxsize=None)   # each page's headings, read once for all its links
def _anchors(path: str) -> set[str]:
    return {_slug(h) for h in re.findall(r'^#+ (.+)$', _prose(path), re.M)}


def _links(page: str) -> list[str]:
    return [link for link in _LINK.findall(_prose(os.path.join(_REPO, page)))
            if not re.match(r'[a-z]+:', link)]


def test_the_slug_is_githubs():
    assert _slug('The compact progress model, and when to use SOLE-R1 instead') == \
        'the-compact-progress-model-and-when-to-use-sole-r1-instead'
    assert _slug("The robot's masks: `robot_mask_node`, a self-filter") == \
        'the-robots-masks-robot_mask_node-a-self-filter'


def test_the_pages_and_their_links_are_read():
    assert {'README.md', 'docs/compact_model.md', 'sole_r1_ros/sole_r1_ros/data/README.md',
            'sole_r1_ros/sole_r1_ros/labelled/FORMAT.md'} <= set(_PAGES)
    assert 'docs/compact_model.md#what-distillation-buys' in _links('README.md')


@pytest.mark.parametrize('page', _PAGES)
def test_relative_links_lead_to_a_file_and_heading(page):
    links = _links(page)
    here = os.path.dirname(os.path.join(_REPO, page))
    for link in links:
        path, _, anchor = link.partition('#')
        target = os.path.normpath(os.path.join(here, path)) if path else \
            os.path.join(_REPO, page)
        assert os.path.exists(target), f'{page}: {link} leads to no file'
        if anchor:
            assert anchor in _anchors(target), f'{page}: {link} names no heading of {path or page}'
