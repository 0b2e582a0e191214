"""The kit's small tools: ``runner`` (the numbered notebooks in order, with papermill), ``notebook_guard`` (the git
filter that keeps outputs out of committed notebooks), ``threads`` (thread settings for process pools).
"""
