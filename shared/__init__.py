"""ER-transit auditor: finds VNet pairs that reach each other through a shared ExpressRoute circuit."""
