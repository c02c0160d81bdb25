import gradio as gr


def greet(name: str) -> str:
    return "Hello " + name


gr.Interface(greet, "text", "text").launch()
