"""The figures the dashboards show: compliance, dose statistics, reference levels."""
