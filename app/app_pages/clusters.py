"""How the latent clusters depend on emotion: distributions, means, tests against shuffled clusters."""
import streamlit as st

from app import figures, loaders, widgets

run_id, network = widgets.selected()
st.title("Clusters × emotion")
table = loaders.load_utterances(run_id, network)
splits = st.multiselect("Splits", sorted(table["split"].unique()), key="clusters.splits", placeholder="all splits",
                        help="None chosen: every utterance of the corpus.")
report = loaders.load_analysis(run_id, network, tuple(splits))
sources = list(report.per_cluster.index.get_level_values("source").unique())
source = st.segmented_control("Attributes", sources, default=sources[0], key="clusters.source",
                              help="label = annotated values (labelled clips only); prediction = the model's output")
source = source or sources[0]
attributes = [a for a in widgets.ATTRIBUTES if f"{a}_mean" in report.per_cluster]
rows = table[table["split"].isin(splits)] if splits else table
value_columns = attributes if source == "label" else [f"{a}_predicted" for a in attributes]
st.plotly_chart(figures.attribute_boxes(rows.rename(columns=dict(zip(value_columns, attributes))), attributes),
                key="clusters.boxes", width="stretch")
left, right = st.columns([2, 3])
left.plotly_chart(figures.cluster_heatmap(report.per_cluster.loc[source], attributes), key="clusters.heatmap", width="stretch")
right.markdown("**Dependence of the clusters on each attribute** (Kruskal–Wallis; ε² = effect size; "
               "MI = mutual information with the attribute in 5 quantile bins; shuffled = the same with "
               "cluster labels permuted, mean ± std)")
dependence = figures.dependence_table(report.dependence.loc[source])
right.dataframe(dependence, key="clusters.dependence", width="stretch", column_config={
    c: st.column_config.NumberColumn(c, format={"p-value": "%.2e", "n": "%d"}.get(c, "%.3f")) for c in dependence.columns})
if report.categorical:
    st.subheader("Categorical emotion")
    st.write(figures.contingency_text(report.categorical))
    st.dataframe(report.contingency, key="clusters.contingency")
st.subheader("Prototype clips (nearest to each centroid)")
protos = loaders.load_prototypes(run_id, network)
cluster = st.selectbox("Cluster", protos["cluster"], key="clusters.prototype")
file = protos.loc[protos["cluster"] == cluster, "file"].iloc[0]
st.caption(f"{file}")
st.audio(table.at[file, "path"])
