"""The dashboards' figures as SQL, for PostgreSQL (issue 16): what audit.analytics computes from
the analysis frame, computed by the database, so an app process holds results instead of every
record. audit.analytics.source chooses between the two; the figures are equal (tests/analytics/
test_sql_figures*.py).

- records: the filtered final records with the frame's derived columns (one subquery);
- groups: the groupings (physician, room, month, levels, BMI band, ...) and their labels;
- counts: compliance, technique, data quality, safety, radiation-free share, complications;
- dose: medians, 75th percentiles and distributions (percentile_cont), histograms;
- reference: room medians and local DRLs, the share above the reference level;
- scorecard: the physician scorecard, raw and adjusted for case mix;
- drill: the records behind a figure, newest first, with a LIMIT.
"""
