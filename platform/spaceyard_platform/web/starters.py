"""Files to start a new Space from, shown on its page until the first push (the hello samples)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class StarterFile:
    path: str
    text: str


def _readme(title: str, sdk: str, extra: str) -> str:
    return (
        f"---\ntitle: {title}\nemoji: 👋\ncolorFrom: indigo\ncolorTo: pink\nsdk: {sdk}\n{extra}"
        "short_description: My first Space on Spaceyard\n---\n"
    )


GRADIO_APP = """import gradio as gr


def greet(name: str) -> str:
    return f"Hello {name}!"


with gr.Blocks(title="Hello Gradio") as demo:
    gr.Markdown("# 👋 Hello Gradio")
    name = gr.Textbox(label="Name")
    out = gr.Textbox(label="Greeting")
    gr.Button("Greet").click(greet, name, out, api_name="greet")

if __name__ == "__main__":
    demo.launch()
"""

STREAMLIT_APP = """import streamlit as st

st.title("👋 Hello Streamlit")
name = st.text_input("Name")
if name:
    st.write(f"Hello {name}!")
"""

STATIC_INDEX = """<!doctype html>
<html lang="en">
<head><meta charset="utf-8"><title>Hello</title></head>
<body><h1>👋 Hello from a static Space</h1></body>
</html>
"""

DOCKER_FILE = """FROM python:3.11-slim
WORKDIR /app
COPY server.py .
EXPOSE 7860
CMD ["python", "server.py"]
"""

DOCKER_SERVER = """from http.server import BaseHTTPRequestHandler, HTTPServer


class Hello(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "text/plain; charset=utf-8")
        self.end_headers()
        self.wfile.write("👋 Hello from a Docker Space\\n".encode())


HTTPServer(("0.0.0.0", 7860), Hello).serve_forever()
"""


def for_sdk(sdk: str, title: str) -> list[StarterFile]:
    if sdk == "gradio":
        return [
            StarterFile("README.md", _readme(title, "gradio", "app_file: app.py\n")),
            StarterFile("app.py", GRADIO_APP),
            StarterFile("requirements.txt", ""),
        ]
    if sdk == "streamlit":
        return [
            StarterFile("README.md", _readme(title, "streamlit", "app_file: app.py\n")),
            StarterFile("app.py", STREAMLIT_APP),
        ]
    if sdk == "static":
        return [
            StarterFile("README.md", _readme(title, "static", "app_file: index.html\n")),
            StarterFile("index.html", STATIC_INDEX),
        ]
    return [
        StarterFile("README.md", _readme(title, "docker", "app_port: 7860\n")),
        StarterFile("Dockerfile", DOCKER_FILE),
        StarterFile("server.py", DOCKER_SERVER),
    ]
