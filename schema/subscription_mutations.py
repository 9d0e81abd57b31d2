"""(being written)"""

MUTATIONS = None
