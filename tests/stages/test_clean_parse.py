"""The HTML path's parse: the trees trafilatura's own parse gives, read by our metadata rules."""

import pytest
from lxml import etree
from lxml.html import HtmlElement
from trafilatura.utils import load_html

from pipeline.stages.clean.metadata import _texts_after, page_metadata, parse_html

PAGES = {
    "article": "<!DOCTYPE html><html lang='en'><head><title>A headline | Site</title></head><body>"
               "<form><input name='q'><select><option>1</option></select><label>L</label></form>"
               "<h1>A headline</h1><p class='byline'>By Jane Roe</p><p>Text &amp; more text.</p></body></html>",
    "xml declaration": "<?xml version='1.0' encoding='utf-8'?><html><body><p>Déjà vu</p><p>b</p></body></html>",
    "faulty doctype": "<!DOCTYPE html SYSTEM 'about:legacy-compat'>\n<html/><body><p>x\x0b y</p><div>z</div></body>",
    "fragment": "<p>a lone paragraph</p>",
    "plain text": "not markup at all",
    "empty": "",
}


@pytest.mark.parametrize("name", sorted(PAGES))
def test_parse_html_reads_pages_as_trafilatura_does(name):
    page = PAGES[name]
    ours, theirs = parse_html(page), load_html(page)
    assert (ours is None) == (theirs is None)
    if ours is not None:
        assert etree.tostring(ours, encoding="unicode") == etree.tostring(theirs, encoding="unicode")
        assert all(isinstance(el, HtmlElement) for el in ours.iter() if isinstance(el.tag, str))


def test_byline_found_by_class_when_none_follows_the_headline():
    page = ("<html><head><title>Storm hits the coast</title></head><body><h1>Storm hits the coast</h1>"
            + "<p>" + "A long paragraph of the article that goes on. " * 30 + "</p>"
            + "<div class='Article-Author'><span>Maria Lopez</span></div><div class='author-avatar'>Not Her</div>"
            "</body></html>")
    meta = page_metadata(parse_html(page), "https://news.example.com/storm")
    assert meta.authors == ["Maria Lopez"]
    assert meta.title == "Storm hits the coast"


def test_texts_around_the_headline():
    article = "First paragraph of the article, which goes on for a while and says what happened to whom. " * 2
    page = ("<html><body><p>Nov 18, 2019</p><script>var x = 'Nov 1, 2001';</script><h1>Storm hits the coast</h1>"
            "<div><span>By</span> <b>Ann Lee</b><script>skip()</script><style>p {}</style></div>"
            f"<noscript>no script</noscript><p>{article}<i>More</i> text.</p></body></html>")
    tree = parse_html(page)
    assert _texts_after(tree.find(".//h1")) == ["By", "Ann Lee", article.strip(), "More", "text."]
    meta = page_metadata(tree, "https://news.example.com/a")
    assert (meta.title, meta.authors, meta.published) == ("Storm hits the coast", ["Ann Lee"], "2019-11-18")
