// No secret reaches the logs (issue 6 §6): a second app instance logs everything at Debug into memory while a full
// session runs — keys in headers and in query strings, end-user passwords and tokens, key rotation, an owner password
// reset, console SQL, a live stream — then every secret it used is searched for in what was logged.
using System.Collections.Concurrent;
using System.Net.Http.Headers;
using System.Net.Http.Json;
using System.Text;
using System.Text.Json;
using DbStudio.Core.Projects;
using DbStudio.Tests.Infrastructure;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Mvc.Testing;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;

namespace DbStudio.Tests.Endpoints;

public sealed class CapturingLoggerProvider : ILoggerProvider, ISupportExternalScope
{
    public readonly ConcurrentQueue<string> Lines = new();
    private IExternalScopeProvider _scopes = new LoggerExternalScopeProvider();

    public ILogger CreateLogger(string categoryName) => new Logger(this, categoryName);
    public void SetScopeProvider(IExternalScopeProvider scopeProvider) => _scopes = scopeProvider;
    public void Dispose() { }

    private sealed class Logger(CapturingLoggerProvider owner, string category) : ILogger
    {
        public IDisposable? BeginScope<TState>(TState state) where TState : notnull => owner._scopes.Push(state);
        public bool IsEnabled(LogLevel logLevel) => true;

        public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter)
        {
            var sb = new StringBuilder($"{logLevel} {category}: {formatter(state, exception)} {exception}");
            // Structured values and scopes too: a secret in a property is as leaked as one in the text.
            if (state is IEnumerable<KeyValuePair<string, object?>> props) foreach (var (k, v) in props) sb.Append($" {k}={v}");
            owner._scopes.ForEachScope((scope, b) =>
            {
                b.Append(" scope:").Append(scope);
                if (scope is IEnumerable<KeyValuePair<string, object?>> kv) foreach (var (k, v) in kv) b.Append($" {k}={v}");
            }, sb);
            owner.Lines.Enqueue(sb.ToString());
        }
    }
}

public class LogSecretsTests(TestApp app)
{
    [Fact]
    public async Task A_full_session_logs_no_key_token_or_password()
    {
        var capture = new CapturingLoggerProvider();
        await using var logged = new LoggedApp(app.Db.PlatformConnectionString, capture);
        var baseUrl = logged.StartOnLoopback();
        var http = new HttpClient { BaseAddress = baseUrl };
        var secrets = new List<string>();

        // A platform account.
        var email = $"logs{Guid.NewGuid():N}@example.com";
        const string platformPassword = "platform password 7f3a";
        secrets.Add(platformPassword);
        (await http.PostAsJsonAsync("/api/auth/register", new { email, password = platformPassword })).EnsureSuccessStatusCode();
        (await http.PostAsJsonAsync("/api/auth/login", new { email, password = "wrong password 9c2e" })).Dispose();
        secrets.Add("wrong password 9c2e");
        var login = await (await http.PostAsJsonAsync("/api/auth/login", new { email, password = platformPassword })).EnsureSuccessStatusCode()
            .Content.ReadFromJsonAsync<JsonElement>();
        var platformToken = login.GetProperty("accessToken").GetString()!;
        secrets.Add(platformToken);
        var owner = new HttpClient { BaseAddress = baseUrl };
        owner.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", platformToken);

        var p = (await (await owner.PostAsJsonAsync("/api/projects", new { name = "logged" })).EnsureSuccessStatusCode()
            .Content.ReadFromJsonAsync<ProjectInfo>())!;
        secrets.AddRange([p.AnonKey, p.ApiKey, new Uri(p.ConnectionUrl).UserInfo.Split(':')[1]]);
        await Sql("create table notes (id serial primary key, body text, user_id uuid)");
        await Sql("alter role current_user password 'console password 51d0'");
        secrets.Add("console password 51d0");
        await Sql("select 'a deliberate error' from nowhere");
        (await owner.PutAsJsonAsync($"/api/projects/{p.Id}/tables/notes/access", new
        {
            anon_select = true, anon_insert = true, auth_insert = true, auth_select_own = true, auth_update_own = true, auth_delete_own = true,
            user_id_col = "user_id",
        })).EnsureSuccessStatusCode();

        // End users: signup, bad login, login, refresh, logout.
        const string userPassword = "end user password 2b8d";
        secrets.Add(userPassword);
        var signup = await Send(HttpMethod.Post, $"/db/{p.Id}/auth/signup", new { email = "sam@example.com", password = userPassword }, p.AnonKey);
        await Send(HttpMethod.Post, $"/db/{p.Id}/auth/login", new { email = "sam@example.com", password = "guessed 8e1f" }, p.AnonKey);
        secrets.Add("guessed 8e1f");
        var session = await Send(HttpMethod.Post, $"/db/{p.Id}/auth/login", new { email = "sam@example.com", password = userPassword }, p.AnonKey);
        var access = session.GetProperty("access_token").GetString()!;
        var refresh = session.GetProperty("refresh_token").GetString()!;
        secrets.AddRange([signup.GetProperty("access_token").GetString()!, signup.GetProperty("refresh_token").GetString()!, access, refresh]);
        var refreshed = await Send(HttpMethod.Post, $"/db/{p.Id}/auth/refresh", new { refresh_token = refresh }, p.AnonKey);
        secrets.AddRange([refreshed.GetProperty("access_token").GetString()!, refreshed.GetProperty("refresh_token").GetString()!]);
        await Send(HttpMethod.Post, $"/db/{p.Id}/auth/refresh", new { refresh_token = refresh }, p.AnonKey); // reuse: refused
        session = await Send(HttpMethod.Post, $"/db/{p.Id}/auth/login", new { email = "sam@example.com", password = userPassword }, p.AnonKey);
        access = session.GetProperty("access_token").GetString()!; // the reuse revoked the family: a new session
        secrets.AddRange([access, session.GetProperty("refresh_token").GetString()!]);

        // REST with keys and tokens in headers and in query strings, errors included; a stream with query credentials.
        await Send(HttpMethod.Post, $"/db/{p.Id}/rest/notes", new { body = "hello" }, p.AnonKey, access);
        (await http.GetAsync($"/db/{p.Id}/rest/notes?apikey={p.AnonKey}&select=nope")).Dispose();
        (await http.GetAsync($"/db/{p.Id}/rest/notes?apikey={p.AnonKey}&access_token={access}")).Dispose();
        (await http.GetAsync($"/db/{p.Id}/rest/notes?apikey=anon_not_a_real_key_5e7c")).Dispose();
        secrets.Add("anon_not_a_real_key_5e7c");
        await Send(HttpMethod.Get, $"/db/{p.Id}/rest/notes", null, null, p.ApiKey);
        await using (var stream = await SseClient.OpenAsync(baseUrl, $"/db/{p.Id}/rest/notes/stream?apikey={p.AnonKey}&access_token={access}"))
        {
            Assert.Equal(System.Net.HttpStatusCode.OK, stream.Response.StatusCode);
            await Send(HttpMethod.Post, $"/db/{p.Id}/rest/notes", new { body = "live" }, null, p.ApiKey);
            await stream.NextAsync();
        }
        await Send(HttpMethod.Post, $"/db/{p.Id}/auth/logout", new { }, p.AnonKey, access);

        // supabase-js's doors: GoTrue's routes, the REST path, and the realtime socket with the key in its URL and the
        // token in its join.
        const string supaPassword = "supabase user password 4c1a";
        secrets.Add(supaPassword);
        var supa = await Send(HttpMethod.Post, $"/db/{p.Id}/supabase/auth/v1/signup", new { email = "sue@example.com", password = supaPassword }, p.AnonKey, p.AnonKey);
        await Send(HttpMethod.Post, $"/db/{p.Id}/supabase/auth/v1/token?grant_type=password", new { email = "sue@example.com", password = "guessed 0d3b" }, p.AnonKey, p.AnonKey);
        secrets.Add("guessed 0d3b");
        var supaAccess = supa.GetProperty("access_token").GetString()!;
        secrets.AddRange([supaAccess, supa.GetProperty("refresh_token").GetString()!]);
        await Send(HttpMethod.Get, $"/db/{p.Id}/supabase/rest/v1/notes?select=nope", null, p.AnonKey, supaAccess);
        using (var ws = new System.Net.WebSockets.ClientWebSocket())
        {
            await ws.ConnectAsync(new Uri($"ws://{baseUrl.Authority}/db/{p.Id}/supabase/realtime/v1/websocket?apikey={p.AnonKey}&vsn=2.0.0"), CancellationToken.None);
            var join = JsonSerializer.Serialize(new object?[] { "1", "1", "realtime:logged", "phx_join",
                new { config = new { postgres_changes = new[] { new { @event = "*", schema = "public", table = "notes" } } }, access_token = supaAccess } });
            await ws.SendAsync(Encoding.UTF8.GetBytes(join), System.Net.WebSockets.WebSocketMessageType.Text, true, CancellationToken.None);
            var buffer = new byte[4096];
            var reply = await ws.ReceiveAsync(buffer, CancellationToken.None);
            Assert.Contains("\"ok\"", Encoding.UTF8.GetString(buffer, 0, reply.Count));
            await ws.CloseAsync(System.Net.WebSockets.WebSocketCloseStatus.NormalClosure, "", CancellationToken.None);
        }
        await Send(HttpMethod.Post, $"/db/{p.Id}/supabase/auth/v1/logout", null, p.AnonKey, supaAccess);

        // Rotation and reset: the new secrets too.
        var rotated = (await (await owner.PostAsync($"/api/projects/{p.Id}/keys/anon/rotate", null)).Content.ReadFromJsonAsync<ProjectInfo>())!;
        var reset = (await (await owner.PostAsync($"/api/projects/{p.Id}/owner/reset-password", null)).Content.ReadFromJsonAsync<ProjectInfo>())!;
        secrets.AddRange([rotated.AnonKey, new Uri(reset.ConnectionUrl).UserInfo.Split(':')[1]]);
        (await http.GetAsync($"/db/{p.Id}/rest/notes?apikey={p.AnonKey}")).Dispose(); // the old key, refused
        await Sql("select 1");

        await logged.DisposeAsync(); // flush
        var lines = capture.Lines.ToList();
        Assert.True(lines.Count > 50, $"only {lines.Count} log lines: was logging on?");
        var leaks = (from s in secrets.Distinct() from l in lines where l.Contains(s, StringComparison.Ordinal) select $"{s[..6]}… in: {l}").ToList();
        Assert.True(leaks.Count == 0, string.Join("\n", leaks.Take(10)));

        async Task Sql(string sql) => (await owner.PostAsJsonAsync($"/api/projects/{p.Id}/sql", new { sql })).EnsureSuccessStatusCode();

        async Task<JsonElement> Send(HttpMethod method, string path, object? body, string? apikey, string? bearer = null)
        {
            var req = new HttpRequestMessage(method, path);
            if (body is not null) req.Content = JsonContent.Create(body);
            if (apikey is not null) req.Headers.Add("apikey", apikey);
            if (bearer is not null) req.Headers.Authorization = new AuthenticationHeaderValue("Bearer", bearer);
            var res = await http.SendAsync(req);
            var text = await res.Content.ReadAsStringAsync();
            return text.StartsWith('{') ? JsonSerializer.Deserialize<JsonElement>(text) : default;
        }
    }

    private sealed class LoggedApp(string cs, CapturingLoggerProvider capture) : AppFactory(cs, new Dictionary<string, string?>
    {
        ["Logging:LogLevel:Default"] = "Debug",
        ["Logging:LogLevel:Microsoft"] = "Debug",
        ["Logging:LogLevel:Microsoft.AspNetCore"] = "Debug",
        ["Logging:LogLevel:Microsoft.EntityFrameworkCore"] = "Debug",
        ["Logging:LogLevel:Npgsql"] = "Debug",
        ["DbStudio:Auth:AttemptsPerMinute"] = "1000",
    })
    {
        protected override void ConfigureWebHost(IWebHostBuilder builder)
        {
            base.ConfigureWebHost(builder);
            builder.ConfigureLogging(l => l.AddProvider(capture));
        }
    }
}
