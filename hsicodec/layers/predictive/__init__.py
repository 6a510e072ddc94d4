"""The predictive layer: lossless and error-bounded coding (work in progress by another engineer)"""
