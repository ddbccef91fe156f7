"""The consent domain: what a company's consent is made of and the rules it follows, free of AWS, Codat's HTTP API
and our own HTTP API.

  resources    the resource shapes the API serves (companies, connections, journey progress, ledger entries),
               their enums (statuses, source types, ledger entry types) and the actors
  transitions  the one table of what can happen to a connection: event kind → status, ledger entry, confirmation
  timeline     a connection's status and a journey's progress derived from events in event time (order safety)
  journeys     the journeys declared in configuration and how a journey's progress is judged
  records      the resources as stored, with what their bookkeeping needs (owner, versions, history)
  ledger       building ledger entries; which reports are Codat's confirmations of ours, which are late
  progress     settling a company after a change: journeys replayed, milestone entries added or withdrawn
"""
