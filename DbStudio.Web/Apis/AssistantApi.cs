// The assistant over HTTP (DESIGN §7): GET /api/projects/{id}/assistant/context — the project's tables, access in words,
// endpoints and ready examples as Markdown for any AI that builds the project's app. Never a secret (ANON_KEY is a
// placeholder). Owner-only like every /api/projects endpoint: another user's project answers 404.
using System.Security.Claims;
using DbStudio.Core;
using DbStudio.Core.Assistant;
using DbStudio.Core.Projects;
using Microsoft.AspNetCore.Http.HttpResults;
using Microsoft.Extensions.Options;

namespace DbStudio.Web.Apis;

public static class AssistantApi
{
    public static RouteGroupBuilder MapAssistantApi(this IEndpointRouteBuilder app)
    {
        var g = app.MapGroup("/api/projects/{id}/assistant").RequireAuthorization().WithTags("Assistant");
        g.MapGet("/context", Context);
        return g;
    }

    public static async Task<Results<ContentHttpResult, NotFound>> Context(string id, ClaimsPrincipal user, ProjectService projects,
        AssistantContext context, HttpRequest req, IOptions<DbStudioOptions> opt, CancellationToken ct)
    {
        if (!await projects.IsOwnerAsync(ProjectsApi.UserId(user), id, ct)) return TypedResults.NotFound();
        var facts = await context.FactsAsync(id, RestUrl(id, ProjectsApi.BaseUrl(req, opt)), ct);
        return TypedResults.Text(ContextMarkdown.Render(facts), "text/markdown; charset=utf-8");
    }

    public static string RestUrl(string id, string baseUrl) => $"{baseUrl.TrimEnd('/')}/db/{id}/rest";
}
