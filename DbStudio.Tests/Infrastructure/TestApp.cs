// The app under test (WebApplicationFactory) on the run's PostgreSQL, plus helpers to act as platform users.
using System.Net.Http.Headers;
using System.Net.Http.Json;
using System.Text.Json;
using DbStudio.Core.Projects;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Mvc.Testing;
using Microsoft.AspNetCore.TestHost;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;

[assembly: AssemblyFixture(typeof(DbStudio.Tests.Infrastructure.TestApp))]

namespace DbStudio.Tests.Infrastructure;

public class AppFactory(string platformConnectionString, IReadOnlyDictionary<string, string?>? settings = null,
    Action<IServiceCollection>? configure = null)
    : WebApplicationFactory<Program>
{
    /// <summary>What the app logged at Error or above (with the exception), for a failing test to show.</summary>
    public System.Collections.Concurrent.ConcurrentQueue<string> Errors { get; } = new();

    protected override void ConfigureWebHost(IWebHostBuilder builder)
    {
        builder.ConfigureLogging(l => l.AddProvider(new ErrorCollector(Errors)));
        if (configure is not null) builder.ConfigureServices(configure);
        builder.UseEnvironment("Testing");
        builder.UseStaticWebAssets(); // serve _content/MudBlazor/… as `dotnet run` does
        builder.UseSetting("ConnectionStrings:Platform", platformConnectionString);
        builder.UseSetting("DbStudio:Console:StatementTimeout", "00:00:05");
        // Every test is the same client address (127.0.0.1), in parallel: the per-address REST limit would be shared by
        // the whole suite. RateLimitTests turns it on for itself; the per-key limit keeps its default.
        builder.UseSetting("DbStudio:Rest:RequestsPerSecondPerIp", "0");
        // Likewise the sign-in budget per client address (wrong passwords from one address); LoginThrottleTests keep it.
        builder.UseSetting("DbStudio:Login:FailuresPerAddress", "0");
        // Likewise every test registers its own accounts from that one address, and the suite's many app instances share
        // one PostgreSQL: registration limits and the connection guard are on only in the tests about them (LimitsTests).
        builder.UseSetting("DbStudio:Limits:RegistrationsPerHour", "0");
        builder.UseSetting("DbStudio:Limits:ReservedConnections", "0");
        // The suite runs many app instances at once against one cluster: each keeps fewer idle project connections, for
        // less long, than a production instance would (a full run once ran the cluster out of sessions, 53300).
        builder.UseSetting("DbStudio:Rest:MaxConnections", "48");
        builder.UseSetting("DbStudio:Rest:PoolIdle", "00:00:10");
        foreach (var (k, v) in settings ?? new Dictionary<string, string?>()) builder.UseSetting(k, v);
    }

    /// <summary>Starts the app on a real loopback port (Kestrel) and returns its address.</summary>
    public Uri StartOnLoopback()
    {
        UseKestrel(o => o.Listen(System.Net.IPAddress.Loopback, 0));
        StartServer();
        return new Uri(Services.GetRequiredService<Microsoft.AspNetCore.Hosting.Server.IServer>()
            .Features.Get<Microsoft.AspNetCore.Hosting.Server.Features.IServerAddressesFeature>()!.Addresses.First());
    }
}

/// <summary>
/// An app instance whose TimeProvider is the given (fake) clock. A request's X-Test-Client-Address header sets the client
/// address the app sees (the test server has none of its own), so tests can play several clients.
/// </summary>
public sealed class ClockedApp(string cs, TimeProvider clock, IReadOnlyDictionary<string, string?> settings) : AppFactory(cs, settings)
{
    public const string AddressHeader = "X-Test-Client-Address";

    protected override void ConfigureWebHost(IWebHostBuilder builder)
    {
        base.ConfigureWebHost(builder);
        builder.ConfigureTestServices(s =>
        {
            s.AddSingleton(clock);
            s.AddSingleton<Microsoft.AspNetCore.Hosting.IStartupFilter, ClientAddressFromHeader>();
        });
    }

    private sealed class ClientAddressFromHeader : Microsoft.AspNetCore.Hosting.IStartupFilter
    {
        public Action<Microsoft.AspNetCore.Builder.IApplicationBuilder> Configure(Action<Microsoft.AspNetCore.Builder.IApplicationBuilder> next) => app =>
        {
            app.Use(nextMiddleware => ctx =>
            {
                if (ctx.Request.Headers[AddressHeader].FirstOrDefault() is { } a) ctx.Connection.RemoteIpAddress = System.Net.IPAddress.Parse(a);
                return nextMiddleware(ctx);
            });
            next(app);
        };
    }
}

/// <summary>Assembly fixture: one PostgreSQL and one app for the whole run; each test makes its own users and projects.</summary>
public sealed class TestApp : IAsyncLifetime
{
    public PostgresServer Db { get; private set; } = null!;
    public AppFactory Factory { get; private set; } = null!;
    public IServiceProvider Services => Factory.Services;

    /// <summary>The app's real loopback address (Kestrel), for Node clients and the browser.</summary>
    public Uri BaseUrl { get; private set; } = null!;

    public async ValueTask InitializeAsync()
    {
        Db = await PostgresServer.StartAsync();
        Factory = new AppFactory(Db.PlatformConnectionString);
        BaseUrl = Factory.StartOnLoopback(); // migrations run once, before the tests
    }

    public async ValueTask DisposeAsync()
    {
        await Factory.DisposeAsync();
        await Db.DisposeAsync();
    }

    /// <summary>Registers a new platform user and returns a client that sends its bearer token.</summary>
    public async Task<HttpClient> NewUserClientAsync()
    {
        var client = Factory.CreateClient();
        var email = $"u{Guid.NewGuid():N}@example.com";
        var creds = new { email, password = "a long enough password" };
        (await client.PostAsJsonAsync("/api/auth/register", creds)).EnsureSuccessStatusCode();
        var login = await (await client.PostAsJsonAsync("/api/auth/login", creds)).EnsureSuccessStatusCode()
            .Content.ReadFromJsonAsync<JsonElement>();
        client.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", login.GetProperty("accessToken").GetString());
        return client;
    }

    public static async Task<ProjectInfo> CreateProjectAsync(HttpClient client, string name = "test project")
    {
        var res = await client.PostAsJsonAsync("/api/projects", new { name });
        res.EnsureSuccessStatusCode();
        return (await res.Content.ReadFromJsonAsync<ProjectInfo>())!;
    }

    public static async Task<JsonElement[]> SqlAsync(HttpClient client, string projectId, string sql)
    {
        var res = await client.PostAsJsonAsync($"/api/projects/{projectId}/sql", new { sql });
        res.EnsureSuccessStatusCode();
        var body = await res.Content.ReadFromJsonAsync<JsonElement>();
        return body.GetProperty("results").EnumerateArray().ToArray();
    }

    public T Service<T>() where T : notnull => Services.GetRequiredService<T>();

    /// <summary>Reads the change id inside a project's opaque stream ids (with its key: what only the server can do).</summary>
    public async Task<Func<string, long?>> StreamIdDecoderAsync(string projectId)
    {
        var key = await Service<DbStudio.Core.Streams.StreamIds>().KeyAsync(projectId, CancellationToken.None);
        return id => DbStudio.Core.Streams.StreamIds.ChangeOf(key, id);
    }

    /// <summary>Runs psql (the cluster's own) with a connection URL; each extra argument is passed as it is.</summary>
    public static async Task<(int ExitCode, string Output, string Error)> PsqlAsync(string connectionUrl, params string[] args)
    {
        var psi = new System.Diagnostics.ProcessStartInfo(Path.Combine(DbStudio.Core.Postgres.PgBinaries.Find()!, "psql"))
        {
            RedirectStandardOutput = true, RedirectStandardError = true,
        };
        psi.ArgumentList.Add(connectionUrl);
        foreach (var a in args) psi.ArgumentList.Add(a);
        using var psql = System.Diagnostics.Process.Start(psi)!;
        var output = psql.StandardOutput.ReadToEndAsync();
        var error = psql.StandardError.ReadToEndAsync();
        await psql.WaitForExitAsync();
        return (psql.ExitCode, await output, await error);
    }
}

/// <summary>Collects the app's Error-level log lines (message and exception) into a queue.</summary>
internal sealed class ErrorCollector(System.Collections.Concurrent.ConcurrentQueue<string> errors) : Microsoft.Extensions.Logging.ILoggerProvider
{
    public Microsoft.Extensions.Logging.ILogger CreateLogger(string category) => new Logger(category, errors);
    public void Dispose() { }

    private sealed class Logger(string category, System.Collections.Concurrent.ConcurrentQueue<string> errors) : Microsoft.Extensions.Logging.ILogger
    {
        public IDisposable? BeginScope<TState>(TState state) where TState : notnull => null;
        public bool IsEnabled(Microsoft.Extensions.Logging.LogLevel level) => level >= Microsoft.Extensions.Logging.LogLevel.Error;
        public void Log<TState>(Microsoft.Extensions.Logging.LogLevel level, Microsoft.Extensions.Logging.EventId id, TState state,
            Exception? exception, Func<TState, Exception?, string> formatter)
        {
            if (IsEnabled(level) && errors.Count < 100) errors.Enqueue($"{category}: {formatter(state, exception)} {exception}");
        }
    }
}
