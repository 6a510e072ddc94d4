"""The coefficient-map layer: principal-component maps coded in the CDF 9/7 domain."""
