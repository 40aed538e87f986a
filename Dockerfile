FROM python:3.11-slim
WORKDIR /app
COPY . .
RUN pip install --no-cache-dir ".[postgres]"
EXPOSE 8000
CMD ["alphabet", "serve", "--host", "0.0.0.0", "--port", "8000"]
