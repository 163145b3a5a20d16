# Multi-stage build: SDK image builds and publishes; the runtime image runs as a non-root user.
# The container needs an external PostgreSQL: set ConnectionStrings__Platform (see README).
FROM mcr.microsoft.com/dotnet/sdk:10.0 AS build
WORKDIR /src
COPY Directory.Build.props Directory.Packages.props DbStudio.sln ./
COPY DbStudio.Core/DbStudio.Core.csproj DbStudio.Core/
COPY DbStudio.Web/DbStudio.Web.csproj DbStudio.Web/
RUN dotnet restore DbStudio.Web/DbStudio.Web.csproj
COPY DbStudio.Core/ DbStudio.Core/
COPY DbStudio.Web/ DbStudio.Web/
RUN dotnet publish DbStudio.Web/DbStudio.Web.csproj -c Release -o /app --no-restore

FROM mcr.microsoft.com/dotnet/aspnet:10.0 AS runtime
WORKDIR /app
COPY --from=build /app .
ENV ASPNETCORE_URLS=http://+:8080 \
    DOTNET_CLI_TELEMETRY_OPTOUT=1
EXPOSE 8080
USER app
HEALTHCHECK --interval=15s --timeout=3s --start-period=20s --retries=3 \
  CMD ["dotnet", "DbStudio.Web.dll", "--healthcheck"]
ENTRYPOINT ["dotnet", "DbStudio.Web.dll"]
