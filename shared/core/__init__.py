"""The pure core: parse, compute pairs, diff with causes, explain, what-if, policy, views, the report page,
the audit chain and the questions to it. No I/O, no SDK; imports nothing outside core/."""
