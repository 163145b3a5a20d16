// supabase-js's realtime client (realtime-js 2.x) unchanged (DESIGN §5): /db/{id}/supabase/realtime/v1/websocket is a
// WebSocket speaking the Phoenix channel protocol (PhoenixSocket) for postgres_changes. The project key comes in the URL
// (?apikey=…&vsn=…, as realtime-js sends it: never logged — the host writes no request lines with query strings);
// the end user's access token comes in each channel's phx_join and access_token messages.
using DbStudio.Core.Access;
using DbStudio.Core.Auth;
using DbStudio.Core.Catalog;
using DbStudio.Core.Projects;
using DbStudio.Core.Streams;

namespace DbStudio.Web.Apis.Supabase;

public static class RealtimeApi
{
    public static IEndpointRouteBuilder MapRealtimeApi(this IEndpointRouteBuilder app)
    {
        app.MapGet("/db/{id}/supabase/realtime/v1/websocket", Handle)
            .RequireRateLimiting(RestApi.RateLimitPolicy).WithTags("supabase-js realtime");
        return app;
    }

    private static async Task Handle(HttpContext ctx, string id, Credentials credentials, SchemaCache schemas, AccessPolicies access,
        ChangeCapture capture, ChangeHub hub, StreamVisibility visibility, ILogger<PhoenixSocket> log)
    {
        var apiKey = RestApi.ApiKey(ctx);
        if (!ProjectNaming.IsValidId(id) || string.IsNullOrEmpty(apiKey) || !await credentials.IsProjectKeyAsync(id, apiKey, ctx.RequestAborted))
        {
            await RestApi.WriteError(ctx, 401, RestApi.Unauthorized());
            return;
        }
        var vsn = ctx.Request.Query["vsn"].FirstOrDefault() ?? "1.0.0";
        if (vsn is not ("1.0.0" or "2.0.0"))
        {
            await RestApi.WriteError(ctx, 400, new Core.Rest.RestError("PGRST100", $"Unsupported protocol version vsn={vsn}", null,
                "realtime-js sends vsn=1.0.0 (JSON objects) or vsn=2.0.0 (JSON arrays)"));
            return;
        }
        if (!ctx.WebSockets.IsWebSocketRequest)
        {
            await RestApi.WriteError(ctx, 400, new Core.Rest.RestError("PGRST100", "This endpoint speaks WebSocket only", null,
                "Connect with supabase-js: supabase.channel(…).on('postgres_changes', …).subscribe()"));
            return;
        }
        using var ws = await ctx.WebSockets.AcceptWebSocketAsync();
        var socket = new PhoenixSocket(ws, id, apiKey, arrays: vsn == "2.0.0", credentials,
            new StreamServices(schemas, access, capture, hub, visibility), log);
        await socket.RunAsync(ctx.RequestAborted);
    }
}
