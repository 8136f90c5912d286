"""pmm-widgets: a Polymarket CLOB market-making workbench.

The core (venue clients, books, strategy, execution, risk, store, engine) imports no UI
library; `pmm_widgets.ui` holds the ipywidgets/Bokeh faces and only notebooks import it.
"""

__version__ = "0.1.0"
