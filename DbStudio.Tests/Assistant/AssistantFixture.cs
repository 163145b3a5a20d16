// An app whose assistant talks to a FakeModelServer (a real OpenAI-compatible HTTP server), on the run's PostgreSQL.
using System.Net.Http.Headers;
using System.Text.Json;
using DbStudio.Core.Access;
using DbStudio.Core.Assistant;
using DbStudio.Core.Console;
using DbStudio.Core.Projects;
using DbStudio.Tests.Infrastructure;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Options;

namespace DbStudio.Tests.Assistant;

public sealed class AssistantFixture(TestApp app) : IAsyncLifetime
{
    public TestApp App => app;
    public const string Model = "fake-model";
    public const string ModelKey = "sk-test-assistant-key-7f3a";
    public FakeModelServer Server { get; private set; } = null!;
    public AppFactory Factory { get; private set; } = null!;

    public async ValueTask InitializeAsync()
    {
        Server = await FakeModelServer.StartAsync();
        Factory = new AppFactory(app.Db.PlatformConnectionString, new Dictionary<string, string?>
        {
            ["DbStudio:Assistant:Endpoint"] = Server.Endpoint,
            ["DbStudio:Assistant:Model"] = Model,
            ["DbStudio:Assistant:ApiKey"] = ModelKey,
        });
        _ = Factory.Server; // start it
    }

    public async ValueTask DisposeAsync()
    {
        await Factory.DisposeAsync();
        await Server.DisposeAsync();
    }

    public T Service<T>() where T : notnull => Factory.Services.GetRequiredService<T>();

    public async Task<HttpClient> NewUserClientAsync()
    {
        var client = Factory.CreateClient();
        var creds = new { email = $"a{Guid.NewGuid():N}@example.com", password = "a long enough password" };
        (await client.PostAsJsonAsync("/api/auth/register", creds)).EnsureSuccessStatusCode();
        var login = await (await client.PostAsJsonAsync("/api/auth/login", creds)).EnsureSuccessStatusCode().Content.ReadFromJsonAsync<JsonElement>();
        client.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", login.GetProperty("accessToken").GetString());
        return client;
    }

    public async Task<(HttpClient Client, ProjectInfo Project)> ProjectAsync(string? sql = null)
    {
        var client = await NewUserClientAsync();
        var p = await TestApp.CreateProjectAsync(client, "assistant project");
        if (sql is not null)
            Assert.All(await TestApp.SqlAsync(client, p.Id, sql), r => Assert.False(r.TryGetProperty("error", out var e) && e.ValueKind != JsonValueKind.Null, r.ToString()));
        return (client, p);
    }

    /// <summary>The drawer's logic for a project, with the app's services (options may be overridden).</summary>
    public AssistantSession Session(ProjectInfo p, AssistantOptions? options = null) =>
        new(p.Id, p.RestUrl, Service<AssistantChat>(), Service<AssistantContext>(), Service<Conversations>(), Service<SqlConsole>(),
            Service<AccessPolicies>(), options is null ? Service<IOptions<AssistantOptions>>() : Options.Create(options), NullLogger.Instance);

    /// <summary>Whether a relation exists in the project's schema (asked through the console, as the owner).</summary>
    public static async Task<bool> ExistsAsync(HttpClient client, string projectId, string table)
    {
        var r = await TestApp.SqlAsync(client, projectId, $"select to_regclass('{table}') is not null as present");
        return r[0].GetProperty("rows")[0][0].GetBoolean();
    }
}
