"""Teaching: lessons (notebook-style Markdown files), the labs' engines and the
training doctor. Nothing here imports Streamlit."""
