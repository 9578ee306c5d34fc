"""The view layer: what the pages and the report show, as plain functions (no streamlit, so it is testable).

Labels and number formats (``labels``, ``formats``), a page's state in the URL (``url_state``), the pick lists and
GPU filters (``catalog``), one view-model module per page (``compare``, ``home``, ``explain``, ``cross_validation``,
``data``, ``side_by_side``, ``plan``), the plotly figure builders (``figures``, ``plan_figures``) and the published
report (``report``). It imports the core (``wattgpu_core``) and never the reverse; every number comes from there.
"""
