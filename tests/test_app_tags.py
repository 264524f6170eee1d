"""AppTest of curation on the latent map and the Export page (issue 31): a cluster and a clip tagged, the tags
colouring, filtering and shown in the inspector, undo, an empty selection, a damaged log, the corrected manifest."""
import shutil

import pandas as pd
import pytest
from streamlit.testing.v1 import AppTest

from core.curate.edits import curation
from core.data.corpus_formats import load_manifest
from core.store.edits_store import FOLDER, CorpusEdits
from tests.test_app import APP


@pytest.fixture
def curated_store(app_store):
    """The shared app store, its corpus's edits log removed afterwards: the other tests see the corpus uncurated."""
    yield app_store
    shutil.rmtree(app_store / "runs" / FOLDER, ignore_errors=True)


def _log(store) -> CorpusEdits:
    folders = list((store / "runs" / FOLDER).glob("*/edits.json"))
    assert len(folders) == 1, folders
    return CorpusEdits(folders[0].parent.name, store / "runs")


def _open_map() -> AppTest:
    at = AppTest.from_file(APP, default_timeout=120)
    at.run()
    assert not at.exception, at.exception
    return at


def test_a_tagged_cluster_and_clip_colour_filter_and_show_in_the_inspector(curated_store):
    at = _open_map()
    at.radio(key="latent.tag_target").set_value("a cluster").run()
    at.text_input(key="latent.tag_text").input("laughter").run()
    at.button(key="latent.tag_add").click().run()
    assert not at.exception, at.exception
    state = curation(_log(curated_store).read())
    tagged = {f for f, tags in state.tags.items() if "laughter" in tags}
    assert len(tagged) > 0

    assert "tag" in at.selectbox(key="latent.color_by").options  # the map can now be coloured by tag
    at.selectbox(key="latent.color_by").select("tags").run()
    assert not at.exception, at.exception
    at.multiselect(key="latent.tagss").select("laughter").run()  # the filter keeps the tagged cluster alone
    assert not at.exception and not any("No utterance passes" in w.value for w in at.warning)

    clip = sorted(tagged)[0]
    at.text_input(key="latent.inspect").input(clip).run()
    facts = next(d.value for d in at.dataframe if "tags" in d.value.columns)
    assert facts.loc[0, "tags"] == "laughter"
    at.radio(key="latent.tag_target").set_value(f"the inspected clip ({clip})").run()
    at.text_input(key="latent.tag_text").input("music").run()
    at.button(key="latent.tag_add").click().run()
    assert curation(_log(curated_store).read()).tags[clip] == {"laughter", "music"}
    at.button(key="latent.tag_undo").click().run()  # this tab's last edit: the clip's second tag
    assert not at.exception and curation(_log(curated_store).read()).tags[clip] == {"laughter"}
    assert set(curation(_log(curated_store).read()).tags) == tagged

    other = next(r for r in at.selectbox(key="run").options if r != at.selectbox(key="run").value)
    at.selectbox(key="run").select(other).run()  # the ablation partner: another run over the same corpus
    assert not at.exception and "tag" in at.selectbox(key="latent.color_by").options  # the tags are the corpus's


def test_an_empty_selection_and_a_damaged_log_are_messages_and_the_map_stays(curated_store):
    at = _open_map()
    at.text_input(key="latent.tag_text").input("laughter").run()
    at.button(key="latent.tag_add").click().run()  # the default target: the map's selection, empty
    assert not at.exception and any("no clip is selected" in e.value for e in at.error)

    at.radio(key="latent.tag_target").set_value("a cluster").run()
    at.button(key="latent.tag_add").click().run()
    log = _log(curated_store)
    log.path.write_text(log.path.read_text().replace("laughter", "laughing"))  # changed on disk, checksum stale
    damaged = log.path.read_bytes()
    at = _open_map()
    assert any("edits log does not read" in e.value and "edits.json" in e.value for e in at.error)
    assert at.title[0].value == "Latent map" and "utterances in the clustering space" in at.caption[0].value
    at.radio(key="latent.tag_target").set_value("a cluster").run()
    at.text_input(key="latent.tag_text").input("music").run()
    at.button(key="latent.tag_add").click().run()
    assert not at.exception and any("nothing was written over it" in e.value for e in at.error)
    assert log.path.read_bytes() == damaged


def test_the_export_page_writes_the_corrected_manifest_and_the_tags(curated_store, tmp_path):
    from core.curate.edits import mark_unusable
    at = _open_map()
    at.radio(key="latent.tag_target").set_value("a cluster").run()
    at.text_input(key="latent.tag_text").input("laughter").run()
    at.button(key="latent.tag_add").click().run()
    log = _log(curated_store)
    corpus = load_manifest(curated_store / "demo" / "manifest.csv")
    unusable = corpus.index[corpus["split"] == "train"][0]
    log.append(mark_unusable(corpus, curation(log.read()), [unusable], "wrong segment"))
    at.switch_page("app_pages/export.py").run()
    assert not at.exception, at.exception
    out = tmp_path / "corrected.csv"
    at.text_input(key="export.corrected_path").input(str(out))
    at.button[-1].click().run()  # the form's submit button
    assert not at.exception and any(str(out) in s.value for s in at.success)
    fixed = load_manifest(out)
    assert len(fixed) == len(corpus) - 1 and not fixed["path"].str.endswith(unusable).any()
    assert set(pd.read_csv(out.with_name("corrected.edits.csv"))["kind"]) == {"tag", "unusable"}
